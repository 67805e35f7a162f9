"""Security: TLS contexts and credentials, identity from certificates, ACL authorization."""
