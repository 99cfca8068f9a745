"""Jobs engine models (issue 6 fills this in)."""
