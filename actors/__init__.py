"""The runtime roles of HIL-SERL as plain Python classes; ``cluster/`` wraps them in Ray.

    RobotActor ──frames──▶ RewardActor (frozen classifier, batches calls from every robot)
      ▲   │
      │   └──transitions (chunks)──▶ ReplayActor (online + demo buffers)
      │                                  │ batches
      │                                  ▼
      └────versioned policy weights──── Learner (SAC + DrQ-v2)

Robot backends live here too: the simulated SO-101 (MuJoCo), the real SO-101 through LeRobot,
and the simulated STS3215 servo bus that lets the real path run without an arm.
"""
