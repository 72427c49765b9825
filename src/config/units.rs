//! Durations ("500ms", "2s", "5m", "1h", "1d") and sizes ("512KiB", "10MiB", "1GiB").
//! The helper that owns src/config fills these in.
