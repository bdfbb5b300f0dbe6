"""Template filters and tags of the app's templates."""
