# libdiffuse.so and the install rules: the installable form of the library. The in-tree static
# modules (diffuse_core ... diffuse_pipeline) stay as they are; tests link them directly.
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

# Every module's objects in one shared library. Its SONAME carries the major version
# (libdiffuse.so.<major>): the C API's ABI is kept stable within a major version.
set(DIFFUSE_MODULES core io backend random tokenizer schedulers models pipeline)
if(DIFFUSE_CUDA)
  list(APPEND DIFFUSE_MODULES cuda_kernels)
endif()
set(diffuse_objects)
foreach(m ${DIFFUSE_MODULES})
  list(APPEND diffuse_objects $<TARGET_OBJECTS:diffuse_${m}>)
endforeach()
add_library(diffuse_shared SHARED ${diffuse_objects})
# Linking the archives too brings the modules' external dependencies (oneDNN, OpenMP, libpng,
# zlib, ...). Every symbol of the modules listed above is already defined by their objects, so
# no archive member is pulled in twice; a module missing from the list is still linked.
target_link_libraries(diffuse_shared PRIVATE diffuse_pipeline)
# Users of the library see include/ only: the public API, nothing from src/.
target_include_directories(diffuse_shared INTERFACE
  $<BUILD_INTERFACE:${CMAKE_SOURCE_DIR}/include> $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>)
target_compile_features(diffuse_shared INTERFACE cxx_std_17)
set_target_properties(diffuse_shared PROPERTIES
  OUTPUT_NAME diffuse EXPORT_NAME diffuse LINKER_LANGUAGE CXX
  VERSION ${PROJECT_VERSION} SOVERSION ${PROJECT_VERSION_MAJOR})
add_library(diffuse::diffuse ALIAS diffuse_shared)

install(TARGETS diffuse_shared EXPORT diffuseTargets LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR})
install(DIRECTORY ${CMAKE_SOURCE_DIR}/include/diffuse DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}
  FILES_MATCHING PATTERN "*.h" PATTERN "*.hpp")

# find_package(diffuse) -> diffuse::diffuse
set(DIFFUSE_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/diffuse)
install(EXPORT diffuseTargets NAMESPACE diffuse:: DESTINATION ${DIFFUSE_CMAKE_DIR})
configure_package_config_file(${CMAKE_SOURCE_DIR}/cmake/diffuseConfig.cmake.in
  ${CMAKE_BINARY_DIR}/diffuseConfig.cmake INSTALL_DESTINATION ${DIFFUSE_CMAKE_DIR})
write_basic_package_version_file(${CMAKE_BINARY_DIR}/diffuseConfigVersion.cmake
  VERSION ${PROJECT_VERSION} COMPATIBILITY SameMajorVersion)
install(FILES ${CMAKE_BINARY_DIR}/diffuseConfig.cmake ${CMAKE_BINARY_DIR}/diffuseConfigVersion.cmake
  DESTINATION ${DIFFUSE_CMAKE_DIR})

# pkg-config: paths relative to the .pc file, so `cmake --install --prefix X` works for any X.
file(RELATIVE_PATH DIFFUSE_PC_PREFIX /root/${CMAKE_INSTALL_LIBDIR}/pkgconfig /root)
string(REGEX REPLACE "/$" "" DIFFUSE_PC_PREFIX "${DIFFUSE_PC_PREFIX}")
configure_file(${CMAKE_SOURCE_DIR}/cmake/diffuse.pc.in ${CMAKE_BINARY_DIR}/diffuse.pc @ONLY)
install(FILES ${CMAKE_BINARY_DIR}/diffuse.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
