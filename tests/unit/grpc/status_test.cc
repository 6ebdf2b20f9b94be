#include "grpc/status.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

namespace h2mesh::grpc {
namespace {

using std::chrono::hours;
using std::chrono::microseconds;
using std::chrono::milliseconds;
using std::chrono::minutes;
using std::chrono::nanoseconds;
using std::chrono::seconds;

// ---- grpc-timeout parsing ---------------------------------------------------------------------

TEST(ParseTimeout, EveryUnitIsUnderstood) {
  EXPECT_EQ(parse_timeout("2H"), Duration(hours(2)));
  EXPECT_EQ(parse_timeout("3M"), Duration(minutes(3)));
  EXPECT_EQ(parse_timeout("4S"), Duration(seconds(4)));
  EXPECT_EQ(parse_timeout("500m"), Duration(milliseconds(500)));
  EXPECT_EQ(parse_timeout("250u"), Duration(microseconds(250)));
  EXPECT_EQ(parse_timeout("77n"), Duration(nanoseconds(77)));
}

TEST(ParseTimeout, EightDigitsAreTheMaximum) {
  EXPECT_EQ(parse_timeout("99999999n"), Duration(nanoseconds(99999999)));
  EXPECT_EQ(parse_timeout("99999999u"), Duration(microseconds(99999999)));
  EXPECT_EQ(parse_timeout("99999999m"), Duration(milliseconds(99999999)));
  EXPECT_EQ(parse_timeout("99999999S"), Duration(seconds(99999999)));
  EXPECT_EQ(parse_timeout("00000001S"), Duration(seconds(1)));
  EXPECT_EQ(parse_timeout("123456789S"), std::nullopt);
  EXPECT_EQ(parse_timeout("000000001S"), std::nullopt);
}

TEST(ParseTimeout, HugeHoursSaturateInsteadOfOverflowing) {
  constexpr Duration kTenYears = hours(24 * 365 * 10);
  for (const char* text : {"99999999H", "2562048H", "10000000H"}) {
    auto d = parse_timeout(text);
    ASSERT_TRUE(d.has_value()) << text;
    EXPECT_GE(*d, kTenYears) << text;  // positive and practically unbounded
  }
}

TEST(ParseTimeout, LongTimeoutsAreExactOrPracticallyUnbounded) {
  EXPECT_EQ(parse_timeout("87600H"), Duration(hours(87600)));  // ten years
  EXPECT_EQ(parse_timeout("5256000M"), Duration(minutes(5256000)));
  // 99999999M (190 years) fits int64 nanoseconds; an implementation may also cap it.
  EXPECT_GE(*parse_timeout("99999999M"), Duration(hours(87600)));
}

TEST(ParseTimeout, ZeroIsAValidTimeout) { EXPECT_EQ(parse_timeout("0m"), Duration::zero()); }

TEST(ParseTimeout, EmptyOrUnitOnlyIsMalformed) {
  EXPECT_EQ(parse_timeout(""), std::nullopt);
  EXPECT_EQ(parse_timeout("S"), std::nullopt);
  EXPECT_EQ(parse_timeout("m"), std::nullopt);
}

TEST(ParseTimeout, MissingOrUnknownUnitIsMalformed) {
  EXPECT_EQ(parse_timeout("100"), std::nullopt);  // '0' is not a unit
  EXPECT_EQ(parse_timeout("10s"), std::nullopt);  // units are case sensitive: S, not s
  EXPECT_EQ(parse_timeout("10h"), std::nullopt);
  EXPECT_EQ(parse_timeout("10U"), std::nullopt);
  EXPECT_EQ(parse_timeout("10N"), std::nullopt);
  EXPECT_EQ(parse_timeout("10x"), std::nullopt);
  EXPECT_EQ(parse_timeout("10ms"), std::nullopt);
}

TEST(ParseTimeout, NonDigitsAreMalformed) {
  EXPECT_EQ(parse_timeout("-1S"), std::nullopt);
  EXPECT_EQ(parse_timeout("+1S"), std::nullopt);
  EXPECT_EQ(parse_timeout(" 1S"), std::nullopt);
  EXPECT_EQ(parse_timeout("1 S"), std::nullopt);
  EXPECT_EQ(parse_timeout("1.5S"), std::nullopt);
  EXPECT_EQ(parse_timeout("0x1S"), std::nullopt);
  EXPECT_EQ(parse_timeout("abcS"), std::nullopt);
  EXPECT_EQ(parse_timeout("1a2m"), std::nullopt);
}

TEST(ParseTimeout, EmbeddedNulIsMalformed) {
  EXPECT_EQ(parse_timeout(std::string_view("1\0S", 3)), std::nullopt);
}

// The reason goes into the answer to the client and the log: each kind of defect names itself.
std::string why_malformed(std::string_view value) {
  const char* why = nullptr;
  auto d = parse_timeout(value, &why);
  if (d) return "parsed";
  return why ? why : "no reason given";
}

TEST(ParseTimeout, TooManyDigitsSaysSo) {
  EXPECT_EQ(why_malformed("123456789S"), "has more than 8 digits");
  EXPECT_EQ(why_malformed("000000001m"), "has more than 8 digits");
  EXPECT_EQ(why_malformed(std::string(200, '9') + "S"), "has more than 8 digits");
}

TEST(ParseTimeout, BadUnitSaysSo) {
  for (std::string_view v : {"10s", "10h", "10x", "10ms", "100", "1S ", "5\xff"})
    EXPECT_EQ(why_malformed(v), "does not end with a unit (H, M, S, m, u or n)") << v;
}

TEST(ParseTimeout, EmptySaysSo) {
  EXPECT_EQ(why_malformed(""), "is empty");
  EXPECT_EQ(why_malformed("S"), "has no digits before its unit");
  EXPECT_EQ(why_malformed("n"), "has no digits before its unit");
}

TEST(ParseTimeout, NonDigitsSaySo) {
  for (std::string_view v : {"-1S", "+1S", " 1S", "1 S", "1.5S", "0x1S", "abcS", "1a2m", "\xd9\xa3S"})
    EXPECT_EQ(why_malformed(v), "has a character other than a digit before its unit") << v;
  EXPECT_EQ(why_malformed(std::string_view("1\0S", 3)),
            "has a character other than a digit before its unit");
}

TEST(ParseTimeout, ValidValueLeavesTheReasonAlone) {
  const char* why = "untouched";
  EXPECT_EQ(parse_timeout("8m", &why), Duration(milliseconds(8)));
  EXPECT_STREQ(why, "untouched");
}

// ---- grpc-timeout formatting ------------------------------------------------------------------

TEST(FormatTimeout, ExactValuesUseTheSmallestUnit) {
  EXPECT_EQ(format_timeout(nanoseconds(1)), "1n");
  EXPECT_EQ(format_timeout(nanoseconds(99999999)), "99999999n");
  EXPECT_EQ(format_timeout(milliseconds(100)), "100000u");  // 100000000n has 9 digits
  EXPECT_EQ(format_timeout(seconds(1)), "1000000u");
  EXPECT_EQ(format_timeout(seconds(100)), "100000m");
  EXPECT_EQ(format_timeout(hours(1)), "3600000m");
}

TEST(FormatTimeout, ZeroAndNegativeBecomeOneNanosecond) {
  // A deadline already in the past still has to be sent as a valid (tiny) grpc-timeout.
  EXPECT_EQ(format_timeout(Duration::zero()), "1n");
  EXPECT_EQ(format_timeout(-seconds(5)), "1n");
}

TEST(FormatTimeout, RoundsUpWhenPrecisionIsLost) {
  // 100000001 ns does not fit 8 digits: in microseconds it is 100000.001, rounded up.
  EXPECT_EQ(format_timeout(nanoseconds(100000001)), "100001u");
  EXPECT_EQ(format_timeout(nanoseconds(100000000)), "100000u");
}

TEST(FormatTimeout, HugeDurationsUseHours) {
  EXPECT_EQ(format_timeout(hours(2000000)), "2000000H");
  EXPECT_EQ(format_timeout(minutes(99999999) + nanoseconds(1)), "1666667H");
}

TEST(FormatTimeout, LargestDurationDoesNotOverflow) {
  EXPECT_EQ(format_timeout(Duration::max()), "2562048H");  // int64 ns: about 292 years
}

TEST(FormatTimeout, RoundTripNeverShortensTheDeadline) {
  // Durations spread over every unit's range, plus awkward off-by-one values.
  std::vector<Duration> samples;
  // Up to about 9 years (2^58 ns): far beyond any real deadline, below any sane cap.
  for (int64_t v = 1; v < (int64_t{1} << 58); v = v * 3 + 1) {
    samples.push_back(nanoseconds(v));
    samples.push_back(nanoseconds(v + 999));
    samples.push_back(nanoseconds(v * 7 / 5));
  }
  samples.push_back(nanoseconds(99999999));
  samples.push_back(nanoseconds(100000000));
  samples.push_back(microseconds(99999999) + nanoseconds(1));
  samples.push_back(milliseconds(99999999) + nanoseconds(1));
  samples.push_back(seconds(99999999) + nanoseconds(1));
  for (Duration d : samples) {
    std::string text = format_timeout(d);
    ASSERT_LE(text.size(), 9u) << text;
    auto parsed = parse_timeout(text);
    ASSERT_TRUE(parsed.has_value()) << d.count() << "ns -> " << text;
    EXPECT_GE(*parsed, d) << d.count() << "ns -> " << text;
  }
}

TEST(FormatTimeout, RoundTripIsExactWhenTheValueFits) {
  for (Duration d : {Duration(nanoseconds(12345)), Duration(milliseconds(1500)),
                     Duration(seconds(30)), Duration(minutes(90)), Duration(hours(100000))}) {
    EXPECT_EQ(parse_timeout(format_timeout(d)), d) << format_timeout(d);
  }
}

TEST(FormatTimeout, RoundingUpLosesLessThanOneUnit) {
  // 1 hour + 1 ns: microseconds would be 3600000001 (10 digits), milliseconds 3600001 fits.
  Duration d = hours(1) + nanoseconds(1);
  EXPECT_EQ(format_timeout(d), "3600001m");
  EXPECT_LT(*parse_timeout(format_timeout(d)) - d, milliseconds(1));
}

// ---- grpc-message -----------------------------------------------------------------------------

TEST(EscapeRawMessageBytes, RawBytesAreEncodedAndEncodedTextIsLeftAlone) {
  std::string out = "untouched";
  EXPECT_FALSE(escape_raw_message_bytes("already %C3%A9ncoded, 100% fine", &out));
  EXPECT_EQ(out, "untouched");
  ASSERT_TRUE(escape_raw_message_bytes("caf\xc3\xa9 \x01%", &out));
  EXPECT_EQ(out, "caf%C3%A9 %01%");
}

TEST(EncodeMessage, PrintableAsciiPassesThrough) {
  EXPECT_EQ(encode_message("no route for /a.B/C (authority x:1)"),
            "no route for /a.B/C (authority x:1)");
  EXPECT_EQ(encode_message(" ~"), " ~");
  EXPECT_EQ(encode_message(""), "");
}

TEST(EncodeMessage, PercentAndControlCharactersAreEscaped) {
  EXPECT_EQ(encode_message("100%"), "100%25");
  EXPECT_EQ(encode_message("a\r\nb"), "a%0D%0Ab");
  EXPECT_EQ(encode_message(std::string_view("\0", 1)), "%00");
  EXPECT_EQ(encode_message("\t\x7f"), "%09%7F");
}

TEST(EncodeMessage, Utf8IsEscapedBytewise) {
  EXPECT_EQ(encode_message("caf\xc3\xa9"), "caf%C3%A9");
  EXPECT_EQ(encode_message("\xff"), "%FF");
}

// ---- grpc-status ------------------------------------------------------------------------------

TEST(ParseStatus, AcceptsNonNegativeIntegers) {
  EXPECT_EQ(parse_status("0"), 0);
  EXPECT_EQ(parse_status("14"), 14);
  EXPECT_EQ(parse_status("16"), 16);
  EXPECT_EQ(parse_status("99"), 99);  // unknown codes are still numbers; callers decide
}

TEST(ParseStatus, RejectsEverythingElse) {
  EXPECT_EQ(parse_status(""), std::nullopt);
  EXPECT_EQ(parse_status("-1"), std::nullopt);
  EXPECT_EQ(parse_status("+1"), std::nullopt);
  EXPECT_EQ(parse_status(" 1"), std::nullopt);
  EXPECT_EQ(parse_status("1 "), std::nullopt);
  EXPECT_EQ(parse_status("OK"), std::nullopt);
  EXPECT_EQ(parse_status("1x"), std::nullopt);
  EXPECT_EQ(parse_status("99999999999999999999"), std::nullopt);  // overflows int
}

TEST(StatusName, NamesEveryCodeAndFlagsTheRest) {
  EXPECT_STREQ(status_name(0), "OK");
  EXPECT_STREQ(status_name(4), "DEADLINE_EXCEEDED");
  EXPECT_STREQ(status_name(12), "UNIMPLEMENTED");
  EXPECT_STREQ(status_name(14), "UNAVAILABLE");
  EXPECT_STREQ(status_name(16), "UNAUTHENTICATED");
  EXPECT_STREQ(status_name(17), "UNKNOWN_CODE");
  EXPECT_STREQ(status_name(-1), "UNKNOWN_CODE");
}

// ---- error → status ---------------------------------------------------------------------------

TEST(StatusForError, ConnectFailuresAreUnavailable) {
  EXPECT_EQ(status_for_error(ErrorCode::ConnectFailed), StatusCode::Unavailable);
  EXPECT_EQ(status_for_error(ErrorCode::ConnectTimeout), StatusCode::Unavailable);
  EXPECT_EQ(status_for_error(ErrorCode::NoHealthyEndpoint), StatusCode::Unavailable);
}

TEST(StatusForError, UpstreamTroubleIsUnavailable) {
  EXPECT_EQ(status_for_error(ErrorCode::UpstreamReset), StatusCode::Unavailable);
  EXPECT_EQ(status_for_error(ErrorCode::UpstreamGoaway), StatusCode::Unavailable);
  EXPECT_EQ(status_for_error(ErrorCode::UpstreamProtocol), StatusCode::Unavailable);
  EXPECT_EQ(status_for_error(ErrorCode::Draining), StatusCode::Unavailable);
  EXPECT_EQ(status_for_error(ErrorCode::Io), StatusCode::Unavailable);
}

TEST(StatusForError, NoRouteIsUnimplemented) {
  EXPECT_EQ(status_for_error(ErrorCode::NoRoute), StatusCode::Unimplemented);
}

TEST(StatusForError, DeadlineIsDeadlineExceeded) {
  EXPECT_EQ(status_for_error(ErrorCode::DeadlineExceeded), StatusCode::DeadlineExceeded);
}

TEST(StatusForError, ProxyOverloadIsUnavailableSoClientsMayRetry) {
  EXPECT_EQ(status_for_error(ErrorCode::Overloaded), StatusCode::Unavailable);
}

TEST(StatusForError, ClientProtocolErrorsAreInternal) {
  EXPECT_EQ(status_for_error(ErrorCode::InvalidArgument), StatusCode::Internal);
  EXPECT_EQ(status_for_error(ErrorCode::DownstreamProtocol), StatusCode::Internal);
}

TEST(StatusForError, OkIsOk) { EXPECT_EQ(status_for_error(ErrorCode::Ok), StatusCode::Ok); }

TEST(StatusForError, EveryErrorMapsToAKnownStatus) {
  for (int e = 0; e <= static_cast<int>(ErrorCode::Internal); ++e) {
    auto code = static_cast<int>(status_for_error(static_cast<ErrorCode>(e)));
    EXPECT_GE(code, 0);
    EXPECT_LE(code, kMaxStatusCode);
    EXPECT_NE(code, static_cast<int>(StatusCode::Unknown)) << error_code_name(static_cast<ErrorCode>(e));
  }
}

}  // namespace
}  // namespace h2mesh::grpc
