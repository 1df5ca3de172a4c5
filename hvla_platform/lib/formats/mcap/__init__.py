"""Reading raw robot logs (MCAP, ROS 2 profile): strict framing, records, streams, indexing, errors."""
