"""Robot backends behind one gymnasium contract (``contract``): the MuJoCo SO-101 (``sim``), the real
SO-101 through LeRobot (``so101``), the simulated STS3215 servo bus that lets the real path run
without an arm (``servo_sim``), camera sources (``cameras``), and ``factory.make_env(cfg)``.
"""
