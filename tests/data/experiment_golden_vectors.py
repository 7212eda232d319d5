# Run: python tests/data/experiment_golden_vectors.py tests/data/experiment_assignment_golden.json
"""Golden vectors for recsys.experiments: the hash from openssl's SHA-256 (not hashlib) and
exact integer arithmetic, the arms from the rules of assignment.py written out again here."""
import json, subprocess, sys
from fractions import Fraction
def unit(salt, user):
    out = subprocess.run(["openssl", "dgst", "-sha256", "-hex"], input=f"{salt}\n{user}".encode(), capture_output=True, check=True).stdout.decode()
    top = int(out.strip().split()[-1][:16], 16) >> 11
    return top, Fraction(top, 2 ** 53)
hashes = []
for salt, user in [("global-holdout", "u000001"), ("layer:ranking", "u000001"), ("ranker-v2", "u42"),
                   ("fusion-weight-2026-12", "user with spaces"), ("s", ""), ("ünïcödé", "用户-7"),
                   ("layer:pipeline", "u999999"), ("a:b", "c"), ("a", "b:c")]:
    top, u = unit(salt, user)
    hashes.append({"hash_version": "v1", "salt": salt, "user_id": user, "top53": top, "unit": float(u)})
# assignments under tests/data/experiments_golden.yaml, by the rules written out again
def arms_for(user, context, returning):
    if unit("global-holdout", user)[1] < Fraction(1, 10): return None
    arms = {}
    r = unit("layer:ranking", user)[1]
    if r < Fraction(4, 10):
        arms["ranker-v2"] = "control" if unit("ranker-v2", user)[1] * 2 < 1 else "treatment"
    elif Fraction(5, 10) <= r < Fraction(8, 10):
        p = unit("fusion-weight-2026-12", user)[1] * 4
        arms["fusion-weight"] = "control" if p < 2 else ("low" if p < 3 else "high")
    p_ = unit("layer:pipeline", user)[1]
    if p_ < Fraction(1, 2) and context.get("country") in ("US", "DE") and returning is True:
        arms["popular-only"] = "full" if unit("popular-only", user)[1] * 10 < 9 else "popular"
    return arms
cases = []
for i in range(40):
    user = f"u{i:06d}"
    context = {"country": ["US", "DE", "FR"][i % 3], "device": "mobile", "language": "en"}
    returning = [True, False, None][i % 3 if i % 2 else 0]
    a = arms_for(user, context, returning)
    cases.append({"user_id": user, "context": context, "returning": returning,
                  "holdout": a is None, "arms": a or {}})
json.dump({"about": "Golden vectors of recsys.experiments (hash v1 and assignment under "
           "tests/data/experiments_golden.yaml at a time inside every experiment). The hashes "
           "come from openssl's SHA-256 and exact fractions, not from the module.",
           "now_s": 1796000000, "hashes": hashes, "assignments": cases},
          open(sys.argv[1], "w"), indent=1, ensure_ascii=False)
