"""What each CDR method's transferred data reveals: threat model, attacks, PFCDR-DP.

Threat model
------------
Two parties: the **source** domain holds its users' ratings and a pretrained source
model (user representations ``U`` [U_s, d], item matrix ``V`` [N_s, d]); the
**receiving** (target) domain gets, for every overlapping user it asks about, one
transferred vector ``x_i`` per user and nothing else from the source. What crosses:

=====================  ==================================================================
method                 transferred vector ``x_i`` (for bridge and cold users)
=====================  ==================================================================
PFCDR                  the source prototype ``P_i = b_i* @ V`` (Eq. 11) [d]
PFCDR-DP(eps)          ``c + clip(P_i - c, C) + N(0, sigma^2 I)`` (``dp_prototypes``) [d]
EMCDR                  the source user representation ``U_i`` itself [d]
DP-EMCDR(eps)          ``clip(U_i, C) + N(0, sigma^2 I)`` [d]
PriCDR-S               the user's row of the published matrix ``Y = (R - c) Phi + Z`` [k];
                       the whole matrix (every source user) is published
=====================  ==================================================================

Attackers of increasing strength (each has everything the previous one has):

* **A** -- the receiving domain with only what is sent (``x_i`` of each user) and the
  public facts of the protocol (the target rating ``r`` of the inversion, ``eps``).
* **B** -- A plus the source item embeddings ``V`` (a leaked or shared source model);
  for PriCDR-S the publishing projection ``Phi`` (the noise ``Z`` is its privacy, the
  projection may be public).
* **C** -- B plus an auxiliary set of users whose true source data it knows (their
  ``U_i``, ratings and attributes): it fits decoders / classifiers on them.

The linkage attack additionally assumes the attacker holds the source's user table
``U`` (all users), as in re-identification: can a transferred vector be matched to
its user's row?

Protocol (``study.run_privacy``): auxiliary users = the bridge (training overlap)
users of a split; attacked users = the held-out cold-start test users; linkage pool =
every source user. Every attack also runs on controls that carry no user
information (``controls``: each user gets a random other user's vector; pure noise),
so chance is measured, not assumed, and on ``U_i`` itself (= what EMCDR sends), the
ceiling.

Modules: ``attacks`` (the scores), ``decoders`` (what attacker C fits),
``controls``, ``dp_prototypes`` (PFCDR-DP), ``transfers`` (what each method sends on
a prepared run), ``study`` (the suite on one run, JSON / markdown / PNG).
"""
