pub mod edit;
pub mod export;
pub mod init;
pub mod ls;
pub mod models;
pub mod run;
pub mod show;
pub mod ui;
