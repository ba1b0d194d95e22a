fn main() {
    std::process::exit(anemllc::cli::main());
}
