"""The raw-recording contract (topics, message types, joint names, metadata.yaml) and its ROS 2 MCAP writer."""
