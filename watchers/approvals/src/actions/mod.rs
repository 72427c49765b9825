//! The allow-listed actions, one module each.

pub mod email;
pub mod linkedin;
pub mod payment;
pub mod whatsapp;
