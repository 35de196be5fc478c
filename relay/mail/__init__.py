"""Message handling that is not content policy: intake checks, header rewrite, notices."""
