"""Graduate authorisations (grants): scoped, time-limited, revocable consent to verify a graduate's facts."""
