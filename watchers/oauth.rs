//! OAuth2 access tokens for IMAP and SMTP (XOAUTH2) (being built).
