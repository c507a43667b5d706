"""Users, their scoped roles, sign-in (WeChat and password) and tokens."""
