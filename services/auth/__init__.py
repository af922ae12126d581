"""The auth service: users, password hashes, JWTs and password resets over ``svc/auth/*``."""
