"""aiosfu media plane: rooms, participants, publications and subscriptions over aiortc."""
