"""Employment agreements signed online (网签): offer, the graduate's answer, review, cancellation."""
