"""The raw-recording contract: topics, message types, joint names and metadata.yaml."""
