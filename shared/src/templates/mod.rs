//! Texts sent to people, in Czech and English.

pub mod email;
pub mod sms;
