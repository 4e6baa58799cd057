// Umbrella header: everything libdtcall offers.
#pragma once

#include <dtcall/call_router.hpp>
#include <dtcall/client.hpp>
#include <dtcall/config.hpp>
#include <dtcall/crypto.hpp>
#include <dtcall/media_relay.hpp>
#include <dtcall/read_bounded.hpp>
#include <dtcall/result.hpp>
#include <dtcall/server.hpp>
#include <dtcall/session.hpp>
#include <dtcall/user_directory.hpp>
#include <dtcall/version.hpp>
#include <dtcall/wire.hpp>
