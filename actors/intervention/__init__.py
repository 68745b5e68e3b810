"""Human intervention sources behind one interface (``base.InterventionSource``): keyboard, gamepad,
leader arm, the scripted simulated human; ``factory.make_intervention_source(cfg, env)`` builds the
one a config names.
"""
