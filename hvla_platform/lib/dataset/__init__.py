"""Dataset releases: specs, episode selection, the LeRobot v3 writer, norm stats and the Robo-DM cache."""
