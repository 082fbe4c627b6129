// Namespace aliases shared by the library. Nothing else belongs here: this
// header is included everywhere, so it must stay cheap.
#pragma once

namespace boost::asio {}
namespace boost::beast {}
namespace boost::json {}

namespace switchboard {
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace json = boost::json;
}  // namespace switchboard
