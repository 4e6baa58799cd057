// Umbrella header: everything libdtcall offers an embedder.
#pragma once

#include <dtcall/client.hpp>
#include <dtcall/config.hpp>
#include <dtcall/events.hpp>
#include <dtcall/export.hpp>
#include <dtcall/keys.hpp>
#include <dtcall/log.hpp>
#include <dtcall/result.hpp>
#include <dtcall/server.hpp>
#include <dtcall/user_directory.hpp>
#include <dtcall/version.hpp>
