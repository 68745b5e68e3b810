"""The real SO-101: the follower as a gymnasium env (``env``), safe connection checks shared by the
follower and the leader (``connect``), and the leader arm read for teleoperation (``leader_arm``).
"""
