use super::*;

fn argv(args: &[&str]) -> Vec<String> {
    args.iter().map(|a| (*a).to_owned()).collect()
}

#[test]
fn words_split_at_separators_and_camel_case() {
    let cases: &[(&str, &[&str])] = &[
        ("HF_TOKEN", &["hf", "token"]),
        ("apiKey", &["api", "key"]),
        ("X-Amz-Signature", &["x", "amz", "signature"]),
        ("HTTPAuth", &["http", "auth"]),
        ("db.password", &["db", "password"]),
        ("--api-key", &["api", "key"]),
        ("s3Key", &["s3", "key"]),
        ("", &[]),
    ];
    for (name, expected) in cases {
        assert_eq!(words(name), *expected, "{name}");
    }
}

#[test]
fn secret_names() {
    let secret = [
        "api_key",
        "apiKey",
        "API-KEY",
        "apikey",
        "x-api-key",
        "key",
        "private_key",
        "access_key",
        "openai_key",
        "token",
        "hf_token",
        "HF_TOKEN",
        "access_token",
        "accessToken",
        "private_token",
        "auth_token",
        "use_auth_token",
        "id_token",
        "refresh_token",
        "X-Amz-Security-Token",
        "password",
        "db.password",
        "DB_PASSWORD",
        "passwd",
        "pass",
        "DB_PASS",
        "db_pwd",
        "secret",
        "client_secret",
        "client-secret",
        "secret_key",
        "credentials",
        "X-Amz-Credential",
        "creds",
        "auth",
        "basic_auth",
        "Authorization",
        "oauth",
        "signature",
        "X-Amz-Signature",
        "sig",
        "SLURM_JWT",
        "jwt",
        "session_cookie",
        "bearer",
        "passphrase",
        "AccountKey",
    ];
    for name in secret {
        assert!(secret_name(name), "{name} should be secret");
    }
    let kept = [
        "lr",
        "author",
        "authors",
        "keyword",
        "monkey",
        "keys",
        "key_dim",
        "num_keys",
        "sort_key",
        // MLflow's own tests tag runs with `tag_key`.
        "tag_key",
        "text_key",
        "label_key",
        "rng_key",
        "public_key",
        "api_key_file",
        "tokenizer",
        "max_tokens",
        "tokens",
        "pad_token",
        "eos_token",
        "bos_token",
        "pad_token_id",
        "max_token",
        "next_page_token",
        "pageToken",
        "token_id",
        "token_type",
        "auth_type",
        "bypass",
        "compass",
        "passes",
        "forward_pass",
        "pass_at_k",
        "sigma",
        "noise_sig",
        "signature_version",
        "port",
        "project",
        "model.depth",
        "session_id",
        "private",
        "",
        "---",
    ];
    for name in kept {
        assert!(!secret_name(name), "{name} should not be secret");
    }
}

#[test]
fn password_names() {
    for name in [
        "password",
        "db.password",
        "DB_PASS",
        "pwd",
        "client_secret",
        "pin_passphrase",
    ] {
        assert!(password_name(name), "{name}");
    }
    for name in ["api_key", "token", "odd key", "auth", "lr", "bypass"] {
        assert!(!password_name(name), "{name}");
    }
}

#[test]
fn secret_env_names() {
    for name in [
        "HF_TOKEN",
        "SLURM_JWT",
        "SLURM_AUTH_KEY",
        "SLURM_JOB_token",
        "SGE_SESSION_ID",
        "DB_PASS",
        "GH_PAT",
        "PBS_PW",
        "MY_CERT_FILE",
        "SLURM_PRIVATE_DATA",
        "AWS_ACCESS_KEY_ID",
        "PASS_FILE",
    ] {
        assert!(secret_env_name(name), "{name} should be refused");
    }
    for name in [
        "CUDA_VISIBLE_DEVICES",
        "SLURM_JOB_ID",
        "SLURM_DB_URL",
        "SLURM_JOB_PARTITION",
        "SLURM_BYPASS",
        "PBS_COMPASS",
        "PATH",
        "MASTER_ADDR",
    ] {
        assert!(!secret_env_name(name), "{name} should pass");
    }
}

#[test]
fn url_credentials_are_stripped() {
    let cases = [
        // Web schemes lose the whole user-info.
        (
            "https://user:ghp_xxx@github.com/a/b.git",
            "https://github.com/a/b.git",
        ),
        ("https://token@host/x", "https://host/x"),
        ("HTTP://u:p@host:8080/x?q=a@b", "HTTP://host:8080/x?q=a@b"),
        (
            "git+https://oauth2:tok@gitlab.com/g/r.git",
            "git+https://gitlab.com/g/r.git",
        ),
        // Other schemes keep the user name.
        ("postgres://u:pass@h/db", "postgres://u:***@h/db"),
        ("ssh://me:hunter2@host/a.git", "ssh://me:***@host/a.git"),
        (
            "ssh://git@github.com/a/b.git",
            "ssh://git@github.com/a/b.git",
        ),
        ("redis://:pw@cache:6379/0", "redis://:***@cache:6379/0"),
        // A password with characters that should have been escaped.
        ("postgres://u:pa/ss@h/db", "postgres://u:***@h/db"),
        (
            "postgres://u:p?s#s@h/db?sslmode=1",
            "postgres://u:***@h/db?sslmode=1",
        ),
        ("https://u:/x@h/p", "https://h/p"),
        ("postgres://u:12/34@h/db", "postgres://u:***@h/db"),
        (
            "mongodb+srv://u:p%40ss@cluster0.x.net/db",
            "mongodb+srv://u:***@cluster0.x.net/db",
        ),
        // Embedded in a longer string.
        (
            "DATABASE=postgres://u:pass@h/db",
            "DATABASE=postgres://u:***@h/db",
        ),
        (
            "a=https://u:p@h/x b=amqp://g:q@r/",
            "a=https://h/x b=amqp://g:***@r/",
        ),
        // Secret query and fragment parameters.
        (
            "https://u:p@host/r.git?private_token=abc",
            "https://host/r.git?private_token=***",
        ),
        (
            "https://b.s3.amazonaws.com/k?X-Amz-Algorithm=AWS4&X-Amz-Credential=AK%2F1&X-Amz-Signature=f00&X-Amz-Expires=60",
            "https://b.s3.amazonaws.com/k?X-Amz-Algorithm=AWS4&X-Amz-Credential=***&X-Amz-Signature=***&X-Amz-Expires=60",
        ),
        (
            "https://a.blob.core.windows.net/c/f?sv=2020&sig=abc%3D&se=2030",
            "https://a.blob.core.windows.net/c/f?sv=2020&sig=***&se=2030",
        ),
        (
            "https://maps.example.com/api?key=AIza123&q=x",
            "https://maps.example.com/api?key=***&q=x",
        ),
        (
            "https://h/cb#access_token=abc&state=1",
            "https://h/cb#access_token=***&state=1",
        ),
        ("https://h/x?api%5Fkey=abc", "https://h/x?api%5Fkey=***"),
        (
            "https://h/login?next=https://u:p@other/?token=t",
            "https://h/login?next=https://other/?token=***",
        ),
    ];
    for (input, expected) in cases {
        assert_eq!(strip_url_credentials(input), expected, "{input}");
        assert_eq!(redact_value(input), expected, "{input}");
    }
    let kept = [
        "https://github.com/a/b.git",
        "git@github.com:a/b.git",
        "/srv/repos/a.git",
        "https://h/x?page=2&sort_key=loss&max_tokens=5",
        "https://h/x?token=",
        "https://host:8080/a/@user",
        "https://host:8080/@user",
        "https://host:8080/x?q=a@b",
        "http://[::1]:80/a@b",
        "https://npm.example/@scope/pkg",
        "file:///data/train.csv",
        "s3://bucket/key/path",
        "see https://example.com/docs.",
        "no url here",
        "://",
        "é://ü@x",
    ];
    for input in kept {
        assert_eq!(strip_url_credentials(input), input, "{input}");
        assert_eq!(redact_value(input), input, "{input}");
    }
}

#[test]
fn values_lose_what_follows_a_secret_name() {
    let cases = [
        ("HF_TOKEN=abc", "HF_TOKEN=***"),
        ("api_key=abc", "api_key=***"),
        ("--api-key=abc", "--api-key=***"),
        ("--config=api_key=abc", "--config=api_key=***"),
        (
            "-Djavax.net.ssl.trustStorePassword=abc",
            "-Djavax.net.ssl.trustStorePassword=***",
        ),
        ("token=abc lr=0.1", "token=*** lr=0.1"),
        (
            "DefaultEndpointsProtocol=https;AccountName=a;AccountKey=k==;EndpointSuffix=core",
            "DefaultEndpointsProtocol=https;AccountName=a;AccountKey=***;EndpointSuffix=core",
        ),
        (
            r#"{"api_key": "abc", "lr": 0.1}"#,
            r#"{"api_key": "***", "lr": 0.1}"#,
        ),
        (r#"{'token': 'a b'}"#, r#"{'token': '***'}"#),
        ("password: hunter2", "password: ***"),
        ("Authorization: Bearer abc.def", "Authorization: Bearer ***"),
        ("Authorization: Basic dXNlcjpw", "Authorization: Basic ***"),
        ("X-Api-Key: abc", "X-Api-Key: ***"),
        ("curl -H 'bearer xyz.1'", "curl -H 'bearer ***'"),
        ("Bearer abcdefghijklmnopqrstuvwxyz", "Bearer ***"),
        ("pass:hunter2", "pass:***"),
        ("--proxy=u:p@proxy:3128", "--proxy=u:***@proxy:3128"),
        ("u:p@ss@host", "u:***@host"),
        ("run(token='abc')", "run(token='***')"),
    ];
    for (input, expected) in cases {
        assert_eq!(redact_value(input), expected, "{input}");
    }
    let kept = [
        "0.1",
        "relu",
        "lr=0.1",
        "max_tokens=512",
        "tokenizer=gpt2",
        "sort_key: loss",
        "a==b",
        "token==x",
        "key_dim=64",
        "author=me",
        "img:tag@sha256:abcdef",
        "git@github.com:a/b.git",
        "me@example.com",
        "10:30",
        "/data/train.csv",
        "C:\\data\\x",
        "model.depth=4",
        "the bearer of news",
        "",
    ];
    for input in kept {
        assert_eq!(redact_value(input), input, "{input}");
    }
}

#[test]
fn argv_redaction() {
    let cases: &[(&[&str], &[&str])] = &[
        (
            &["train.py", "--api-key=X", "--lr", "0.1"],
            &["train.py", "--api-key=***", "--lr", "0.1"],
        ),
        (
            &["train.py", "--api-key", "X", "--lr", "0.1"],
            &["train.py", "--api-key", "***", "--lr", "0.1"],
        ),
        (&["t", "--token", "X"], &["t", "--token", "***"]),
        (
            &["t", "--access-token", "X"],
            &["t", "--access-token", "***"],
        ),
        (&["t", "--password", "X"], &["t", "--password", "***"]),
        (&["t", "--passwd", "X"], &["t", "--passwd", "***"]),
        (&["t", "--secret", "X"], &["t", "--secret", "***"]),
        (
            &["t", "--client-secret", "X"],
            &["t", "--client-secret", "***"],
        ),
        (&["t", "--auth", "u:p"], &["t", "--auth", "***"]),
        (&["t", "--credentials", "X"], &["t", "--credentials", "***"]),
        (&["t", "--private-key", "X"], &["t", "--private-key", "***"]),
        (&["t", "--hf_token", "X"], &["t", "--hf_token", "***"]),
        (&["t", "--HF-Token", "X"], &["t", "--HF-Token", "***"]),
        (&["t", "--wandb-api-key=X"], &["t", "--wandb-api-key=***"]),
        (&["t", "-token", "X"], &["t", "-token", "***"]),
        (&["t", "-password=X"], &["t", "-password=***"]),
        // A password that starts with a dash is still the value.
        (&["t", "--password", "-x"], &["t", "--password", "***"]),
        // A secret-named flag followed by another option takes no value.
        (
            &["t", "--use-auth-token", "--model", "bert"],
            &["t", "--use-auth-token", "--model", "bert"],
        ),
        (&["t", "--no-token", "data/"], &["t", "--no-token", "data/"]),
        // KEY=VALUE arguments and URLs.
        (
            &["env", "HF_TOKEN=abc", "python", "train.py"],
            &["env", "HF_TOKEN=***", "python", "train.py"],
        ),
        (
            &["t", "--config", "api_key=abc"],
            &["t", "--config", "api_key=***"],
        ),
        (
            &["t", "--db", "postgres://u:pw@h/db"],
            &["t", "--db", "postgres://u:***@h/db"],
        ),
        (
            &["t", "--url=https://u:pw@h/x?token=t"],
            &["t", "--url=https://h/x?token=***"],
        ),
        (
            &["curl", "-H", "Authorization: Bearer abc", "https://h"],
            &["curl", "-H", "Authorization: Bearer ***", "https://h"],
        ),
        // Short options of programs known to take a password there.
        (&["mysql", "-pSECRET", "db"], &["mysql", "-p***", "db"]),
        (
            &["/usr/bin/mysql", "-psecret", "db"],
            &["/usr/bin/mysql", "-p***", "db"],
        ),
        (&["mysql", "-p", "db"], &["mysql", "-p", "db"]),
        (&["mysql", "-P", "3306"], &["mysql", "-P", "3306"]),
        (
            &["sshpass", "-p", "pw", "ssh", "h"],
            &["sshpass", "-p", "***", "ssh", "h"],
        ),
        (
            &["sshpass", "-ppw", "ssh", "h"],
            &["sshpass", "-p***", "ssh", "h"],
        ),
        (
            &["redis-cli", "-a", "pw", "ping"],
            &["redis-cli", "-a", "***", "ping"],
        ),
        (
            &["unzip", "-P", "pw", "x.zip"],
            &["unzip", "-P", "***", "x.zip"],
        ),
        (&["ldapsearch", "-w", "pw"], &["ldapsearch", "-w", "***"]),
        (
            &["curl", "-u", "me:pw", "https://h"],
            &["curl", "-u", "me:***", "https://h"],
        ),
        (
            &["curl", "-ume:pw", "https://h"],
            &["curl", "-ume:***", "https://h"],
        ),
        (
            &["curl", "--user=me:pw", "h"],
            &["curl", "--user=me:***", "h"],
        ),
        (
            &["curl", "--user", "me", "h"],
            &["curl", "--user", "me", "h"],
        ),
        (
            &["docker", "login", "-u", "me", "-p", "pw", "reg"],
            &["docker", "login", "-u", "me", "-p", "***", "reg"],
        ),
        (
            &["docker", "run", "-p", "8080:80", "img"],
            &["docker", "run", "-p", "8080:80", "img"],
        ),
        (&["wandb", "login", "abc123"], &["wandb", "login", "***"]),
        (
            &["wandb", "login", "--relogin", "abc"],
            &["wandb", "login", "--relogin", "***"],
        ),
        // Inside a shell command.
        (
            &["sh", "-c", "python t.py --api-key X --lr 0.1"],
            &["sh", "-c", "python t.py --api-key *** --lr 0.1"],
        ),
        (
            &["sh", "-c", "mysql -pSECRET db; python t.py -p 8080"],
            &["sh", "-c", "mysql -p*** db; python t.py -p 8080"],
        ),
        (
            &["bash", "-c", "run --password 'two words' --x 1"],
            &["bash", "-c", "run --password *** --x 1"],
        ),
        (
            &["ssh", "h", "sh -c 'train --token X' && echo \"mysql -pY\""],
            &[
                "ssh",
                "h",
                "sh -c 'train --token ***' && echo \"mysql -p***\"",
            ],
        ),
        (
            &["python", "-c", "init(config={'api_key': 'k v'})"],
            &["python", "-c", "init(config={'api_key': '***'})"],
        ),
    ];
    for (input, expected) in cases {
        assert_eq!(redact_argv(&argv(input)), argv(expected), "{input:?}");
    }
    let kept: &[&[&str]] = &[
        &["train.py", "--lr", "0.1", "--epochs", "3"],
        &[
            "train.py",
            "--author",
            "x",
            "--keyword",
            "k",
            "--monkey",
            "m",
        ],
        &["ssh", "--port", "22", "-p", "22", "host"],
        &["labbook", "run", "-p", "PROJECT", "--", "python", "t.py"],
        &[
            "t",
            "--max-tokens",
            "512",
            "--tokenizer",
            "gpt2",
            "--pad-token",
            "<pad>",
        ],
        &[
            "t",
            "--sort-key",
            "loss",
            "--key-dim",
            "64",
            "--token-file",
            "/x/tok",
        ],
        &["t", "--data", "/data/train.csv", "--out=runs/a b"],
        &["t", "https://example.com/data.csv", "s3://bucket/key"],
        &["sh", "-c", "echo hi && python t.py --lr 0.1"],
        &["t", "--passes", "3", "--bypass", "x"],
        &["t", "--token"],
        &[],
    ];
    for input in kept {
        assert_eq!(redact_argv(&argv(input)), argv(input), "{input:?}");
    }
}

#[test]
fn shell_words_keep_quotes_inside_words() {
    let s = r#"a 'b c' "d \" e" f\ g"#;
    let words: Vec<&str> = shell_words(s).into_iter().map(|(a, b)| &s[a..b]).collect();
    assert_eq!(words, ["a", "'b c'", r#""d \" e""#, r"f\ g"]);
    assert_eq!(shell_words("x \\"), [(0, 1), (2, 3)]);
}

#[test]
fn secret_files() {
    let secret = [
        ".env",
        "config/.env",
        ".env.local",
        ".env.production",
        "prod.env",
        ".envrc",
        "key.pem",
        "certs/server.KEY",
        "a.p12",
        "b.pfx",
        "AuthKey_X.p8",
        "putty.ppk",
        "store.jks",
        "x.keystore",
        "pw.kdbx",
        "infra/terraform.tfstate",
        "terraform.tfstate.backup",
        "prod.tfvars",
        "id_rsa",
        "id_rsa.pub",
        "deploy/id_ed25519",
        "id_ecdsa_sk",
        "credentials",
        "credentials.json",
        ".aws/credentials",
        "gcp-credentials.json",
        "client_secret_123.apps.googleusercontent.com.json",
        "secrets.yaml",
        ".streamlit/secrets.toml",
        "secrets.py",
        "me_accessKeys.csv",
        "service-account.json",
        ".netrc",
        "_netrc",
        ".pgpass",
        ".npmrc",
        ".pypirc",
        ".git-credentials",
        ".htpasswd",
        ".my.cnf",
        "kubeconfig",
        ".kube/config",
        ".docker/config.json",
        ".config/gh/hosts.yml",
        ".cache/huggingface/token",
        ".ssh/config",
        "home/.gnupg/pubring.kbx",
        "C:\\Users\\me\\.env",
    ];
    for path in secret {
        assert!(secret_file(path), "{path} should be secret");
    }
    let kept = [
        "train.py",
        "README.md",
        ".env.example",
        ".env.sample",
        ".env.template",
        "example.env",
        "environment.yml",
        ".envs/settings.py",
        ".env/lib/site.py",
        "keys.py",
        "monkey.txt",
        "tokenizer.json",
        "tokens.txt",
        "config.json",
        "docker/config.json",
        "kube/config",
        "cert.crt",
        "public.pub",
        "pem/README",
        "",
        "/",
    ];
    for path in kept {
        assert!(!secret_file(path), "{path} should not be secret");
    }
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Byte offsets are computed by hand above; any string, however
        /// odd, must come back without a panic.
        #[test]
        fn never_panics(s in "(\\PC|[:=@/?#&;'\" \\\\%-]){0,64}") {
            let _ = redact_value(&s);
            let _ = strip_url_credentials(&s);
            let _ = redact_argv(&[s.clone(), "--token".into(), s.clone(), "mysql".into(), s.clone()]);
            let _ = secret_name(&s);
            let _ = secret_env_name(&s);
            let _ = secret_file(&s);
        }

        /// A secret in any of the forms the rules promise to catch never
        /// survives, whatever it looks like.
        #[test]
        fn secrets_never_survive(secret in "[A-Za-z0-9._~+/-]{6,24}", i in 0usize..12) {
            let forms = [
                format!("HF_TOKEN={secret}"),
                format!("--api-key={secret}"),
                format!("postgres://user:{secret}@host/db"),
                format!("https://{secret}@github.com/a/b.git"),
                format!("https://h/x?a=1&access_token={secret}&b=2"),
                format!("redis://:{secret}@h:6379"),
                format!("{{\"password\": \"{secret}\"}}"),
                format!("Authorization: Bearer {secret}"),
                format!("sh -c 'train --password {secret}'"),
                format!("x=1;AccountKey={secret};y=2"),
                format!("u:{secret}@proxy:3128"),
                format!("python -c \"run(token='{secret}')\""),
            ];
            // Ambiguous on purpose, so left out: a user name is read up to
            // the first `/` (a token sent as the user name has none);
            // `u://…` is a URL with scheme `u`; after a secret-named option,
            // `--x` is read as the next option.
            let ambiguous = (i == 3 && secret.contains('/'))
                || (i == 10 && secret.starts_with("//"))
                || (i == 8 && secret.starts_with("--"));
            if ambiguous {
                return Ok(());
            }
            let form = &forms[i];
            let redacted = redact_value(&redact_argv(std::slice::from_ref(form)).concat());
            prop_assert!(!redacted.contains(&secret), "{form} -> {redacted}");
            if !secret.starts_with("--") {
                // The value as an argument of its own.
                let split = redact_argv(&["t".into(), "--token".into(), secret.clone()]);
                prop_assert!(!split.concat().contains(&secret));
            }
        }
    }
}
