"""Infrastructure every layer may use: parameter validation, atomic I/O, the device policy, executors.

Nothing here knows about the UFM; nothing here imports another part of ufm.
"""
