"""Key material: the development CA, participant certificates and the gateway's own key store."""
