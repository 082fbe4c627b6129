# The Debian package, made by CPack's DEB generator from the release build:
#
#   cmake --build --preset release --target package
#
# gives build/release/switchboard_<version>-1_<arch>.deb with /usr/bin/switchboard,
# /etc/switchboard/switchboard.conf (a conffile), the systemd unit, the man
# page generated from --help by help2man, and Debian's copyright and
# changelog. Depends: comes from the binary's shared libraries
# (dpkg-shlibdeps). test/package/check-deb checks it (lintian, systemd-analyze,
# and the unpacked binary serving with the packaged config).
set(SWITCHBOARD_PACKAGING_DIR ${CMAKE_CURRENT_SOURCE_DIR}/packaging)
set(SWITCHBOARD_PACKAGE_BUILD_DIR ${CMAKE_CURRENT_BINARY_DIR}/packaging)
file(MAKE_DIRECTORY ${SWITCHBOARD_PACKAGE_BUILD_DIR})

install(TARGETS switchboard_server RUNTIME DESTINATION bin)
install(FILES ${SWITCHBOARD_PACKAGING_DIR}/switchboard.conf DESTINATION /etc/switchboard)
install(FILES ${SWITCHBOARD_PACKAGING_DIR}/switchboard.service DESTINATION /lib/systemd/system)
install(FILES ${SWITCHBOARD_PACKAGING_DIR}/copyright ${CMAKE_CURRENT_SOURCE_DIR}/README.md
        DESTINATION share/doc/switchboard)

# Debian wants both compressed with gzip -9n (no name, no time: reproducible).
find_program(GZIP_PROGRAM gzip REQUIRED)
add_custom_command(
  OUTPUT ${SWITCHBOARD_PACKAGE_BUILD_DIR}/changelog.Debian.gz
  COMMAND ${GZIP_PROGRAM} -9nc ${SWITCHBOARD_PACKAGING_DIR}/changelog
          > ${SWITCHBOARD_PACKAGE_BUILD_DIR}/changelog.Debian.gz
  DEPENDS ${SWITCHBOARD_PACKAGING_DIR}/changelog
  VERBATIM)
# The man page is --help and --version turned into troff by help2man, with the
# sections of man-extra.h2m, so it never drifts from the options.
find_program(HELP2MAN_PROGRAM help2man)
if(HELP2MAN_PROGRAM)
  add_custom_command(
    OUTPUT ${SWITCHBOARD_PACKAGE_BUILD_DIR}/switchboard.1.gz
    COMMAND ${HELP2MAN_PROGRAM} --no-info --section=1
            --name=WebSocket\ message\ relay\ for\ instant\ messaging
            --include=${SWITCHBOARD_PACKAGING_DIR}/man-extra.h2m
            --output=${SWITCHBOARD_PACKAGE_BUILD_DIR}/switchboard.1 $<TARGET_FILE:switchboard_server>
    COMMAND ${GZIP_PROGRAM} -9nf ${SWITCHBOARD_PACKAGE_BUILD_DIR}/switchboard.1
    DEPENDS switchboard_server ${SWITCHBOARD_PACKAGING_DIR}/man-extra.h2m
    VERBATIM)
  add_custom_target(switchboard_package_files ALL
    DEPENDS ${SWITCHBOARD_PACKAGE_BUILD_DIR}/changelog.Debian.gz
            ${SWITCHBOARD_PACKAGE_BUILD_DIR}/switchboard.1.gz)
  install(FILES ${SWITCHBOARD_PACKAGE_BUILD_DIR}/switchboard.1.gz DESTINATION share/man/man1)
  install(FILES ${SWITCHBOARD_PACKAGE_BUILD_DIR}/changelog.Debian.gz
          DESTINATION share/doc/switchboard)
else()
  message(STATUS "help2man not found: no man page, no package (scripts/deps installs it)")
endif()

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME switchboard)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_PACKAGE_CONTACT "Switchboard maintainers <maintainers@users.noreply.r-seed-d280e485.example>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "WebSocket message relay for instant messaging")
set(CPACK_PACKAGE_DESCRIPTION
    "Switchboard relays chat messages between users over WebSocket: per-user\n"
    "sequence numbers, receipts, acknowledgements and replay, so that every\n"
    "stored message arrives once and in order, also after a reconnect or a\n"
    "restart. Messages are kept in SQLite, in memory, or in Redis for a cluster\n"
    "of nodes. It serves a browser chat client, /healthz and Prometheus /metrics.")
string(REPLACE ";" "" CPACK_PACKAGE_DESCRIPTION "${CPACK_PACKAGE_DESCRIPTION}")
set(CPACK_DEBIAN_PACKAGE_RELEASE 1)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_COMPRESSION_TYPE xz)
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
    ${SWITCHBOARD_PACKAGING_DIR}/conffiles ${SWITCHBOARD_PACKAGING_DIR}/postinst
    ${SWITCHBOARD_PACKAGING_DIR}/prerm ${SWITCHBOARD_PACKAGING_DIR}/postrm)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
set(CPACK_INSTALL_DEFAULT_DIRECTORY_PERMISSIONS
    OWNER_READ OWNER_WRITE OWNER_EXECUTE GROUP_READ GROUP_EXECUTE WORLD_READ WORLD_EXECUTE)
set(CPACK_STRIP_FILES ON)
set(CPACK_WARN_ON_ABSOLUTE_INSTALL_DESTINATION OFF)
include(CPack)
