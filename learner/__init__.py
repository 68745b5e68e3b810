"""SAC + DrQ-v2 for HIL-SERL in pure torch: networks, augmentation, replay storage, update, export."""
