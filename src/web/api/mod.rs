//! The JSON API: everything the pages do, behind the same session, role and
//! CSRF checks (the pages' JavaScript calls these same routes).
//!
//! One file per resource.

pub mod audit;
pub mod conversations;
pub mod documents;
pub mod health;
pub mod passages;
pub mod session;
pub mod tokens;
pub mod users;
