"""Access rights: which kind of participant may send which service to which kind (data), plus overrides."""
