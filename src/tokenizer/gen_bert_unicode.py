#!/usr/bin/env python3
"""Generates src/tokenizer/bert_unicode_data.cc: the Unicode tables of the WordPiece ("bert")
normalizer and pre-tokenizer (bert_unicode.h).

  python3 src/tokenizer/gen_bert_unicode.py [--no-hf]

The tables come from Python's unicodedata:
  control      removed by clean_text: categories Cc, Cf, Co except \\t \\n \\r, plus U+0000, U+FFFD;
  whitespace   mapped to ' ' by clean_text: \\t \\n \\r and the White_Space characters that are no
               control characters;
  punctuation  BertPreTokenizer's: ASCII 33-47, 58-64, 91-96, 123-126 and categories P*;
  strip        strip_accents: a character's NFD with its category-Mn characters removed (Hangul
               syllables are decomposed arithmetically in bert_unicode_data.cc, not listed);
  lower        Rust's char::to_lowercase (what Python's str.lower() gives for one character).
Hugging Face `tokenizers` answers these questions with Rust crates of other Unicode versions (its
category tables are older than Python's, its lowercase newer), so when `tokenizers` is installed
(and --no-hf is not given) every code point is also run through HF's BertNormalizer and
BertPreTokenizer and HF's answer is kept where it differs; the number of such code points is
written into the generated file. The CJK ranges are HF's is_chinese_char (0x2B920, not BERT's
0x2B820, starts extension E there).
"""
import argparse
import os
import unicodedata

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "bert_unicode_data.cc")
MAX = 0x110000
WHITE_SPACE = [0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x20, 0x85, 0xA0, 0x1680, *range(0x2000, 0x200B), 0x2028, 0x2029,
               0x202F, 0x205F, 0x3000]
CJK = [(0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0x2A700, 0x2B73F), (0x2B740, 0x2B81F),
       (0x2B920, 0x2CEAF), (0xF900, 0xFAFF), (0x2F800, 0x2FA1F)]
HANGUL_FIRST, HANGUL_LAST = 0xAC00, 0xD7A3


def chars():
    return (cp for cp in range(MAX) if not 0xD800 <= cp <= 0xDFFF)


def base_tables():
    control, space, punct, strip, lower = set(), set(), set(), {}, {}
    for cp in chars():
        c = chr(cp)
        cat = unicodedata.category(c)
        if cp in (0, 0xFFFD) or (cat in ("Cc", "Cf", "Co") and cp not in (9, 10, 13)):
            control.add(cp)
        elif cp in WHITE_SPACE:
            space.add(cp)
        if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126 or cat.startswith("P"):
            punct.add(cp)
        s = "".join(x for x in unicodedata.normalize("NFD", c) if unicodedata.category(x) != "Mn")
        if s != c:
            strip[cp] = s
        low = c.lower()
        if low != c:
            lower[cp] = low
    return control, space, punct, strip, lower


def hf_overrides(control, space, punct, strip, lower):
    from tokenizers import normalizers, pre_tokenizers
    clean = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=False, strip_accents=False,
                                       lowercase=False)
    strip_n = normalizers.BertNormalizer(clean_text=False, handle_chinese_chars=False, strip_accents=True,
                                         lowercase=False)
    lower_n = normalizers.BertNormalizer(clean_text=False, handle_chinese_chars=False, strip_accents=False,
                                         lowercase=True)
    pre = pre_tokenizers.BertPreTokenizer()
    changed = set()
    for cp in chars():
        c = chr(cp)
        r = clean.normalize_str(c)
        hf_control, hf_space = r == "", r == " " and cp != 0x20
        if hf_control != (cp in control) or hf_space != (cp in space):
            changed.add(cp)
            control.discard(cp), space.discard(cp)
            if hf_control:
                control.add(cp)
            if hf_space:
                space.add(cp)
        if not hf_control and not hf_space and cp != 0x20:
            hf_punct = len(pre.pre_tokenize_str("a" + c + "b")) == 3
            if hf_punct != (cp in punct):
                changed.add(cp)
                (punct.add if hf_punct else punct.discard)(cp)
        if not HANGUL_FIRST <= cp <= HANGUL_LAST:
            s = strip_n.normalize_str(c)
            if s != strip.get(cp, c):
                changed.add(cp)
                if s == c:
                    del strip[cp]
                else:
                    strip[cp] = s
        low = lower_n.normalize_str(c)
        if low != lower.get(cp, c):
            changed.add(cp)
            if low == c:
                del lower[cp]
            else:
                lower[cp] = low
    return len(changed)


def ranges(cps):
    out = []
    for cp in sorted(cps):
        if out and out[-1][1] + 1 == cp:
            out[-1][1] = cp
        else:
            out.append([cp, cp])
    return out


def range_table(name, cps):
    rs = ranges(cps)
    body = ",".join(f"{{0x{a:X},0x{b:X}}}" for a, b in rs)
    return f"constexpr Range {name}[] = {{{wrap(body)}}};\n", len(rs)


def wrap(body, width=100):
    lines, cur = [], ""
    for item in body.split(","):
        piece = item + ","
        if len(cur) + len(piece) > width:
            lines.append(cur)
            cur = ""
        cur += piece
    lines.append(cur)
    return "\n    " + "\n    ".join(lines) + "\n"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--no-hf", action="store_true", help="unicodedata only, without HF's answers")
    args = ap.parse_args()
    control, space, punct, strip, lower = base_tables()
    source = f"Python {unicodedata.unidata_version} unicodedata"
    if not args.no_hf:
        import tokenizers
        n = hf_overrides(control, space, punct, strip, lower)
        source += f", with HF tokenizers {tokenizers.__version__}'s answer for {n} code points"
    for cp in range(HANGUL_FIRST, HANGUL_LAST + 1):
        strip.pop(cp, None)  # decomposed arithmetically
    # strip: characters that vanish (combining marks) as ranges; the others as single mappings.
    vanish = [cp for cp, s in strip.items() if s == ""]
    mapped = sorted((cp, s) for cp, s in strip.items() if s != "")
    # lower: one-character mappings as runs (first, count, delta, stride); longer ones listed.
    single = sorted((cp, ord(s)) for cp, s in lower.items() if len(s) == 1)
    multi = sorted((cp, s) for cp, s in lower.items() if len(s) != 1)
    runs = []
    for cp, lo in single:
        d = lo - cp
        if runs:
            first, count, delta, stride = runs[-1]
            last = first + (count - 1) * stride
            if delta == d and ((count == 1 and cp - first in (1, 2)) or cp - last == stride):
                runs[-1] = [first, count + 1, delta, cp - first if count == 1 else stride]
                continue
        runs.append([cp, 1, d, 1])

    out = [f"""// GENERATED by src/tokenizer/gen_bert_unicode.py from {source}. Do not edit.
// The Unicode tables of the WordPiece ("bert") normalizer and pre-tokenizer: see bert_unicode.h.
#include <algorithm>
#include <cstdint>

#include "tokenizer/bert_unicode.h"

namespace longctx::tokenizer::bert_unicode {{
namespace {{

struct Range {{
  uint32_t lo, hi;
}};
struct Mapping {{  // strip_accents: cp -> kStripPool[offset, offset + length)
  uint32_t cp;
  uint16_t offset;
  uint16_t length;
}};
struct LowerRun {{  // cp = first + k * stride (k < count) lowercases to cp + delta
  uint32_t first;
  uint16_t count;
  uint16_t stride;
  int32_t delta;
}};
struct LowerMulti {{
  uint32_t cp;
  char32_t text[4];
}};

"""]
    sizes = {}
    for name, cps in (("kControl", control), ("kSpace", space), ("kPunct", punct), ("kVanish", vanish)):
        text, sizes[name] = range_table(name, cps)
        out.append(text)
    pool, entries = [], []
    for cp, s in mapped:
        entries.append(f"{{0x{cp:X},{len(pool)},{len(s)}}}")
        pool.extend(ord(x) for x in s)
    assert len(pool) < 65536
    out.append(f"constexpr Mapping kStrip[] = {{{wrap(','.join(entries))}}};\n")
    out.append(f"constexpr char32_t kStripPool[] = {{{wrap(','.join(f'0x{x:X}' for x in pool))}}};\n")
    out.append("constexpr LowerRun kLower[] = {" +
               wrap(",".join(f"{{0x{a:X},{c},{s},{d}}}" for a, c, d, s in runs)) + "};\n")
    assert all(len(s) <= 4 for _, s in multi)
    out.append("constexpr LowerMulti kLowerMulti[] = {" + wrap(",".join(
        "{0x%X,{%s}}" % (cp, ",".join(f"0x{ord(x):X}" for x in s)) for cp, s in multi)) + "};\n")
    out.append("""
bool in(const Range* begin, const Range* end, char32_t c) {
  const Range* r = std::upper_bound(begin, end, static_cast<uint32_t>(c),
                                    [](uint32_t v, const Range& x) { return v < x.lo; });
  return r != begin && c <= r[-1].hi;
}
template <size_t N>
bool in(const Range (&t)[N], char32_t c) {
  return in(t, t + N, c);
}

}  // namespace

bool is_control(char32_t c) { return in(kControl, c); }
bool is_space(char32_t c) { return in(kSpace, c); }
bool is_punct(char32_t c) { return in(kPunct, c); }

bool is_chinese(char32_t c) {
  return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) || (c >= 0x20000 && c <= 0x2A6DF) ||
         (c >= 0x2A700 && c <= 0x2B73F) || (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B920 && c <= 0x2CEAF) ||
         (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

void strip_accents(char32_t c, std::u32string& out) {
  if (c >= 0xAC00 && c <= 0xD7A3) {  // Hangul syllable: L V (T), none of them a mark
    const uint32_t s = c - 0xAC00;
    out += static_cast<char32_t>(0x1100 + s / 588);
    out += static_cast<char32_t>(0x1161 + (s % 588) / 28);
    if (s % 28 != 0) out += static_cast<char32_t>(0x11A7 + s % 28);
    return;
  }
  if (in(kVanish, c)) return;
  const Mapping* m = std::lower_bound(std::begin(kStrip), std::end(kStrip), static_cast<uint32_t>(c),
                                      [](const Mapping& x, uint32_t v) { return x.cp < v; });
  if (m != std::end(kStrip) && m->cp == c) {
    out.append(kStripPool + m->offset, m->length);
  } else {
    out += c;
  }
}

void lowercase(char32_t c, std::u32string& out) {
  if (c < 0x80) {
    out += (c >= 'A' && c <= 'Z') ? c + 32 : c;
    return;
  }
  const LowerMulti* mm = std::lower_bound(std::begin(kLowerMulti), std::end(kLowerMulti), static_cast<uint32_t>(c),
                                          [](const LowerMulti& x, uint32_t v) { return x.cp < v; });
  if (mm != std::end(kLowerMulti) && mm->cp == c) {
    for (char32_t x : mm->text) {
      if (x != 0) out += x;
    }
    return;
  }
  const LowerRun* r = std::upper_bound(std::begin(kLower), std::end(kLower), static_cast<uint32_t>(c),
                                       [](uint32_t v, const LowerRun& x) { return v < x.first; });
  if (r != std::begin(kLower)) {
    --r;
    const uint32_t k = (c - r->first) / r->stride;
    if (k < r->count && r->first + k * r->stride == c) {
      out += static_cast<char32_t>(static_cast<int64_t>(c) + r->delta);
      return;
    }
  }
  out += c;
}

}  // namespace longctx::tokenizer::bert_unicode
""")
    with open(OUT, "w", encoding="utf-8") as f:
        f.write("".join(out))
    print(f"wrote {OUT}: {sizes}, {len(mapped)} strip mappings ({len(pool)} chars), {len(runs)} lowercase runs, "
          f"{len(multi)} longer lowercase mappings; {source}")


if __name__ == "__main__":
    main()
