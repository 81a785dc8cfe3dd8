"""Running a model: where its weights come from, download, load as planned, measure, sessions, the store."""
