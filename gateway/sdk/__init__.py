"""The agency-side SDK: compose a message the gateway accepts (signing arrives with issue 3)."""
