// Anchors the test support PCH.
