//! Load generator for the WhatsApp webhook (being built).

fn main() {}
