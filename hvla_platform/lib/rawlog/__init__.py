"""Reading raw robot logs (MCAP, ROS 2 profile): indexing, decoding, error reporting."""
