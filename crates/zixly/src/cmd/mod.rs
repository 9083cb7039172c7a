pub mod db;
pub mod server;
pub mod tenant;
pub mod user;
