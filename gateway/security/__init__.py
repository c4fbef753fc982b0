"""Message security: WS-Security verification, trust anchors, and the gateway's own signatures."""
