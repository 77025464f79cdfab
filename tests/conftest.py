"""Test-wide settings: the Hypothesis profile comes from the environment.

HYPOTHESIS_PROFILE=dev|ci|thorough picks one of the profiles that
``se_numpy.testing`` registers; without it, ``ci`` is used when the variable CI
is set (reproducible runs) and ``dev`` otherwise.
"""
import os

from hypothesis import settings

import se_numpy.testing  # noqa: F401  (registers the profiles)

settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE",
                                     "ci" if os.environ.get("CI") else "dev"))
