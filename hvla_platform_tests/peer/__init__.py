"""Peer validation: our releases checked by an independent tool (lerobot-doctor)."""
