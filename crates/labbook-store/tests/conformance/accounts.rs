//! Users, tokens and roles: what sign-in and every permission check read.

use labbook_core::account::{ResourceKind, Role};
use labbook_store::*;

use crate::common::Backend;

pub fn accounts_keep_users_and_token_digests_and_revoke_at_once(b: &Backend) {
    let s = b.open();
    let ada = s.create_user("ada", "$argon2id$hash-of-ada", 10).unwrap();
    assert_eq!(ada.name, "ada");
    assert!(matches!(
        s.create_user("ada", "$argon2id$other", 11),
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        s.create_user("a:b", "$argon2id$x", 11),
        Err(StoreError::Invalid(e)) if e.field() == "user"
    ));
    let (user, hash) = s.password_hash("ada").unwrap().unwrap();
    assert_eq!(
        (user, hash.as_str()),
        (ada.clone(), "$argon2id$hash-of-ada")
    );
    assert!(s.password_hash("nobody").unwrap().is_none());
    s.set_password("ada", "$argon2id$new").unwrap();
    assert_eq!(s.password_hash("ada").unwrap().unwrap().1, "$argon2id$new");

    let laptop = s
        .create_token("ada", "laptop", "digest-1", 20, None)
        .unwrap();
    let ci = s.create_token("ada", "ci", "digest-2", 21, None).unwrap();
    assert!(matches!(
        s.create_token("nobody", "x", "digest-3", 22, None),
        Err(StoreError::NotFound { what: "user", .. })
    ));
    assert_eq!(s.user_of_token("digest-1", 25).unwrap(), Some(ada.clone()));
    assert_eq!(s.user_of_token("digest-9", 25).unwrap(), None);
    let revoked = s.revoke_token(laptop.id, 30).unwrap();
    assert_eq!(revoked.revoked_ms, Some(30));
    // Revoking again changes nothing, not even the time.
    assert_eq!(s.revoke_token(laptop.id, 40).unwrap().revoked_ms, Some(30));
    assert_eq!(s.user_of_token("digest-1", 25).unwrap(), None);
    assert_eq!(s.user_of_token("digest-2", 25).unwrap(), Some(ada));
    assert!(matches!(
        s.revoke_token(999, 40),
        Err(StoreError::NotFound { what: "token", .. })
    ));
    let names: Vec<_> = s
        .tokens(Some("ada"))
        .unwrap()
        .into_iter()
        .map(|t| t.name)
        .collect();
    assert_eq!(names, ["laptop", "ci"]);

    s.delete_user("ada").unwrap();
    assert!(s.users().unwrap().is_empty());
    assert!(s.tokens(None).unwrap().is_empty());
    assert_eq!(s.user_of_token("digest-2", 25).unwrap(), None);
    assert!(matches!(
        s.delete_user("ada"),
        Err(StoreError::NotFound { .. })
    ));
    assert_eq!(ci.name, "ci");

    // A session expires by itself, and is deleted as a later one is made.
    s.create_user("bo", "$argon2id$b", 1).unwrap();
    let session = s
        .create_token("bo", "dashboard session", "digest-s", 100, Some(200))
        .unwrap();
    assert_eq!(session.expires_ms, Some(200));
    assert!(s.user_of_token("digest-s", 199).unwrap().is_some());
    assert!(s.user_of_token("digest-s", 200).unwrap().is_none());
    s.create_token("bo", "dashboard session", "digest-t", 300, Some(400))
        .unwrap();
    let left: Vec<_> = s
        .tokens(Some("bo"))
        .unwrap()
        .into_iter()
        .map(|t| t.id)
        .collect();
    assert!(!left.contains(&session.id), "{left:?}");
}

pub fn permissions_are_set_replaced_moved_and_go_with_their_user(b: &Backend) {
    let s = b.open();
    s.create_user("ada", "$argon2id$a", 1).unwrap();
    s.create_user("bo", "$argon2id$b", 1).unwrap();
    assert!(!s.users().unwrap()[0].admin);
    s.set_admin("ada", true).unwrap();
    assert!(s.password_hash("ada").unwrap().unwrap().0.admin);
    assert!(matches!(
        s.set_admin("nobody", true),
        Err(StoreError::NotFound { what: "user", .. })
    ));

    s.set_permission("bo", ResourceKind::Project, "7", Role::Read)
        .unwrap();
    s.set_permission("bo", ResourceKind::Project, "7", Role::Edit)
        .unwrap();
    s.set_permission("bo", ResourceKind::Model, "m", Role::Manage)
        .unwrap();
    s.set_permission("ada", ResourceKind::Model, "m", Role::NoPermissions)
        .unwrap();
    let roles = |user: Option<&str>| -> Vec<(String, ResourceKind, String, Role)> {
        s.permissions(user)
            .unwrap()
            .into_iter()
            .map(|p| (p.user, p.kind, p.resource, p.role))
            .collect()
    };
    assert_eq!(
        roles(Some("bo")),
        [
            ("bo".into(), ResourceKind::Model, "m".into(), Role::Manage),
            ("bo".into(), ResourceKind::Project, "7".into(), Role::Edit),
        ]
    );
    assert_eq!(roles(None).len(), 3);
    assert!(matches!(
        s.set_permission("nobody", ResourceKind::Model, "m", Role::Read),
        Err(StoreError::NotFound { what: "user", .. })
    ));

    // A renamed model's roles follow it; a deleted one's go.
    s.move_permissions(ResourceKind::Model, "m", Some("m2"))
        .unwrap();
    assert!(roles(None).iter().all(|r| r.2 != "m"));
    assert_eq!(roles(None).iter().filter(|r| r.2 == "m2").count(), 2);
    s.move_permissions(ResourceKind::Model, "m2", None).unwrap();
    assert_eq!(roles(None).len(), 1);

    s.remove_permission("bo", ResourceKind::Project, "7")
        .unwrap();
    assert!(matches!(
        s.remove_permission("bo", ResourceKind::Project, "7"),
        Err(StoreError::NotFound {
            what: "permission",
            ..
        })
    ));
    s.set_permission("bo", ResourceKind::Project, "7", Role::Read)
        .unwrap();
    s.delete_user("bo").unwrap();
    assert!(roles(None).is_empty());
}
