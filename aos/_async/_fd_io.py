"""``read``, ``write``, ``readv`` and ``writev``. (Placeholder: plain offloads until readiness lands.)"""

from aos import blocking
from aos._async._offload import MUTATE, offload

read = offload(blocking.read, MUTATE)
write = offload(blocking.write, MUTATE)
readv = offload(blocking.readv, MUTATE)
writev = offload(blocking.writev, MUTATE)
