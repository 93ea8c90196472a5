// Positions of the sparse24 layout (docs/FORMAT.md): each group g of four columns keeps two values,
// stored as values[2g] and values[2g + 1]; their columns inside the group (0..3, first < second)
// take 2 bits each and form the group's nibble, first | second << 2; two groups share a byte, the
// even group in the low nibble. Everything that writes or reads positions goes through these, so
// the kernels' inner loops inline them.
#pragma once
#include <cstdint>

namespace sparq::sparse24 {

// The nibble of group g of a row's positions.
constexpr int group_nibble(const uint8_t* positions, int64_t g) { return (positions[g / 2] >> (g % 2 * 4)) & 0xf; }

// Columns inside the group of the first (values[2g]) and second (values[2g + 1]) kept value.
constexpr int first_column(int nibble) { return nibble & 3; }
constexpr int second_column(int nibble) { return nibble >> 2; }

// The nibble of a group that keeps columns first and second.
constexpr int make_nibble(int first, int second) { return first | second << 2; }

// Stores group g's nibble into a row's positions, which start zeroed.
constexpr void put_group_nibble(uint8_t* positions, int64_t g, int nibble) {
  positions[g / 2] = static_cast<uint8_t>(positions[g / 2] | nibble << (g % 2 * 4));
}

}  // namespace sparq::sparse24
