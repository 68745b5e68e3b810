"""The runtime roles of HIL-SERL as plain classes; ``cluster/`` wraps them in Ray, ``local`` runs them in one process.

    RobotRole ──frames──▶ RewardRole (frozen classifier, batches calls from every robot)
      ▲   │
      │   └──transitions (chunks, acked)──▶ ReplayRole (online + demo buffers, log + snapshots)
      │                                        │ batches (prefetched)
      │                                        ▼
      └──────versioned policy weights────── LearnerRole (SAC, feature replay)

Roles reach each other only through ``peers.Peer.call`` (explicit, non-blocking).
"""
