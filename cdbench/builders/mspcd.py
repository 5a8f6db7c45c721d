def build_mspcd(*a, **k): raise NotImplementedError
