"""The private async layer; its public face is the :mod:`aos` namespace."""
