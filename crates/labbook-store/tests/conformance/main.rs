//! What every backend of the `Store` trait must do, run on each: SQLite in
//! a folder of its own, and PostgreSQL in a fresh database of a real
//! server (`common::cluster`). A test here is written once, against
//! `Backend`, and listed below; `sqlite::NAME` and `postgres::NAME` run it.
#![allow(clippy::unwrap_used)] // a test that cannot set up should panic

#[path = "../common/mod.rs"]
#[macro_use]
mod common;

mod accounts;
mod projects;
mod runs;

on_every_backend! {
    runs::runs_are_created_listed_filtered_and_sorted,
    runs::runs_resolve_by_id_prefix_and_name,
    runs::explicit_ids_conflict_and_bad_input_is_named,
    runs::patches_merge_tags_config_and_summary,
    runs::nan_and_infinities_round_trip,
    runs::ranges_and_downsampling_read_the_right_points,
    runs::retried_batches_apply_once,
    runs::a_writer_back_after_the_reaper_cannot_delete_another_runs_tails_under_reused_ids,
    runs::stale_runs_are_reaped_as_crashed_and_compacted,
    runs::soft_delete_hides_and_restore_brings_back,
    runs::output_notes_and_environment_are_kept,
    runs::sixteen_connections_write_at_once_without_losing_a_point,
    runs::a_warm_listing_sees_what_other_connections_wrote,
    runs::starting_resuming_and_repeating_a_start_follow_init_rules,
    runs::a_long_runs_downsample_reads_sketches_and_keeps_every_spike,
    projects::default_project_exists_and_is_hidden_while_empty,
    projects::projects_rename_tag_delete_and_restore_with_their_runs,
    projects::params_are_immutable_and_a_refused_write_changes_nothing,
    projects::dataset_inputs_are_recorded_once_per_use,
    projects::artifacts_store_list_dedupe_and_delete,
    projects::registry_documents_update_atomically,
    projects::the_appender_commits_each_call_and_seals_at_the_end,
    projects::a_retried_request_after_a_restart_lands_once,
    projects::an_appender_whose_tails_were_compacted_under_it_stores_each_point_once,
    projects::a_writer_whose_run_was_reaped_keeps_every_point_once_and_runs_again,
    projects::a_run_its_writer_ends_as_crashed_stays_crashed,
    accounts::accounts_keep_users_and_token_digests_and_revoke_at_once,
    accounts::permissions_are_set_replaced_moved_and_go_with_their_user,
}
