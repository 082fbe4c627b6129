// Whether the tests were built with AddressSanitizer: resident sizes mean
// nothing there (its quarantine keeps what was freed, its shadow memory grows
// with the heap), so memory checks are skipped.
#pragma once

namespace switchboard::test {

#if defined(__SANITIZE_ADDRESS__)
inline constexpr bool under_address_sanitizer = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
inline constexpr bool under_address_sanitizer = true;
#else
inline constexpr bool under_address_sanitizer = false;
#endif
#else
inline constexpr bool under_address_sanitizer = false;
#endif

}  // namespace switchboard::test
