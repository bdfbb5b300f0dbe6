"""Live lessons: the instructor presents, the class follows, anyone can break away."""
