"""Off-chip memory models behind one interface (see :mod:`archsim.mem.interface`)."""
