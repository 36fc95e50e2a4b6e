"""Three exception types raised at known counts from known functions, each caught at once:
raise_value 60000 ValueError, raise_key 30000 KeyError, raise_decode 10000
json.decoder.JSONDecodeError (by json.loads, inside decode_bad). Prints the counts."""
import json

COUNTS = {"ValueError": 60000, "KeyError": 30000, "JSONDecodeError": 10000}


def raise_value(i):
    raise ValueError(i)


def raise_key(d, i):
    return d[i]


def decode_bad(text):
    return json.loads(text)


def main():
    for i in range(COUNTS["ValueError"]):
        try:
            raise_value(i)
        except ValueError:
            pass
        if i % 2 == 0:
            try:
                raise_key({}, i)
            except KeyError:
                pass
        if i % 6 == 0:
            try:
                decode_bad("{bad")
            except json.JSONDecodeError:
                pass
    print(" ".join(f"{k}={v}" for k, v in COUNTS.items()))


main()
